"""Training: CLIP adapted to ReID (``backbone``), losses, and one file per method (``methods``).

How a training loop drives a method
-----------------------------------
::

    from vlreid.model.backbone import BackboneConfig, build_clip
    from vlreid.training.methods import build_method

    clip_model = build_clip(backbone)            # full CLIP, pretrained weights if configured
    method = build_method("scgi", clip_model, backbone, options)  # options: method config dict
    del clip_model                               # the method keeps only what it needs
    for stage in method.stages:                  # ("image",) or ("prompt", "image")
        method.prepare_stage(stage, loader)      # trainable split + caches (see below)
        optimizer = torch.optim.Adam(method.param_groups(stage))
        wrapped, optimizer, ... = accelerator.prepare(method, optimizer, ...)  # once per stage
        for epoch in ...:
            method.train()
            for batch in train_loader:               # ReIDBatch on the right device
                output = wrapped(batch, stage)       # MethodOutput(loss, terms)
                accelerator.backward(output.loss)
                optimizer.step(); optimizer.zero_grad()
                log(output.terms)                    # {"loss": ..., "id": ..., ...} floats
    method.model                                 # the ReIDModel to save and evaluate

Rules the loop must follow:

- **Stages.** ``method.stages`` lists them in order; each stage has its own optimizer,
  scheduler and epoch count (CLIP-ReID / SVLL-ReID: ``"prompt"`` then ``"image"``; baseline and
  CLIP-SCGI: ``"image"`` only). The per-stage learning rates are in the method config and come
  back in ``param_groups``; schedules (warm-up, cosine or steps) belong to the loop config.
- **prepare_stage first.** It sets ``requires_grad`` for the stage (frozen parameters are left
  out of ``param_groups``, so they never change) and builds the stage's caches. Call it at the
  start of every stage *and again after restoring a checkpoint* (caches are not saved: they
  are recomputed from the restored weights). Wrap the method for DDP only after it, once per
  stage, since DDP records the trainable parameters when it wraps.
- **Loaders.** ``"prompt"`` (clip-reid, svll) needs ``loader`` in ``prepare_stage``: every
  training image once, eval transforms, identical on every rank (not sharded). Its training
  batches need only ``labels`` and ``relpaths`` (cached features are looked up by relpath);
  CLIP-ReID shuffles them in batches of 64 (SVLL-ReID: 256). ``"image"`` uses the P x K train
  loader; ``scgi`` needs ``captions`` in the batch. Other stages ignore the ``loader`` argument.
- **Param groups** are plain dicts (``params``, ``lr``, ``weight_decay``, ``name``) for any torch
  optimizer; the scheduler scales each group from its own initial ``lr``.
- **Saving.** The inference checkpoint is ``method.model`` (a ``ReIDModel``, rebuilt with
  ``ReIDModel(BackboneConfig.from_dict(metadata))``); resume state is ``method.state_dict()``
  (includes the frozen text tower, which could be re-created from the backbone config instead).
- **Modes.** Call ``method.train()`` for training steps; ``method.model.eval()`` and
  ``method.model(images, camids)`` for evaluation (``camids`` matter only with SIE).
"""
