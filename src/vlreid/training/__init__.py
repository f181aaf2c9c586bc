"""Training: losses, one file per method (``methods``), the loop (``loop``) and its run state.

How a training loop drives a method
-----------------------------------
::

    from vlreid.model.backbone import build_clip
    from vlreid.training.methods import build_method

    model_config = config.model.for_dataset(num_classes, num_cameras)  # a ModelConfig
    clip_model = build_clip(model_config)        # full CLIP, pretrained weights if configured
    method = build_method("scgi", clip_model, model_config, options)  # options: method config dict
    del clip_model                               # the method keeps only what it needs
    for stage in method.stages:                  # (ImageStage,) or (PromptStage, ImageStage)
        stage.prepare(loader)                    # trainable split + caches (see below)
        optimizer = torch.optim.Adam(stage.param_groups())
        wrapped, optimizer = accelerator.prepare(stage, optimizer)  # once per stage
        for epoch in ...:
            method.train()
            for batch in train_loader:           # ReIDBatch on the right device
                output = wrapped(batch)          # MethodOutput(loss, term_names, term_values)
                accelerator.backward(output.loss)
                optimizer.step(); optimizer.zero_grad()
                sums = sums + output.term_values # on the device: no sync per step
            log(dict(zip(output.term_names, (sums / batches).tolist())))  # once per epoch
    method.model                                 # the ReIDModel to save and evaluate

Rules the loop must follow:

- **Stages.** ``method.stages`` lists the :class:`~vlreid.training.methods.Stage` objects in
  order; ``stage.name`` (``"prompt"``, ``"image"``) names its ``[stages.NAME]`` table: its own
  optimizer, scheduler and epoch count (CLIP-ReID / SVLL-ReID: ``"prompt"`` then ``"image"``;
  baseline and CLIP-SCGI: ``"image"`` only). The names are known without torch from the method's
  options class (``vlreid.method_options``: ``stage_names``). The per-stage learning rates are
  in the method config and come back in ``param_groups()``; schedules (warm-up, cosine or steps)
  belong to the loop config.
- **prepare first.** ``stage.prepare(loader)`` sets ``requires_grad`` for the stage (frozen
  parameters are left out of ``param_groups()``, so they never change) and builds the stage's
  caches. Call it at the start of every stage *and again after restoring a checkpoint* (caches are
  not saved: they are recomputed from the restored weights). Wrap the stage for DDP only after
  it, once per stage, since DDP records the trainable parameters when it wraps. A stage is an
  ``nn.Module`` whose only child is its method, so wrapping it wraps every parameter it trains.
- **Loaders.** The ``"prompt"`` stage (clip-reid, svll) needs ``loader`` in ``prepare``: every
  training image once, eval transforms, identical on every rank (not sharded). Its training
  batches need only ``labels`` and ``relpaths`` (cached features are looked up by relpath);
  CLIP-ReID shuffles them in batches of 64 (SVLL-ReID: 256). ``"image"`` uses the P x K train
  loader; ``scgi`` needs ``captions`` in the batch. Other stages ignore the ``loader`` argument.
- **Param groups** are plain dicts (``params``, ``lr``, ``weight_decay``, ``name``) for any torch
  optimizer; the scheduler scales each group from its own initial ``lr``.
- **Loss terms.** ``output.term_values`` (``(T,)``, detached, on the device) are meant to be
  summed where they are and read once per epoch; ``output.terms`` reads them as floats at once
  (a device sync, fine in tests and notebooks).
- **Saving.** The inference checkpoint is ``method.model`` (a ``ReIDModel``, rebuilt with
  ``ReIDModel(ModelConfig.from_dict(metadata))``); resume state is ``method.state_dict()``
  (includes the frozen text tower, which could be re-created from the model config instead;
  the stages hold no saved state).
- **Modes.** Call ``method.train()`` for training steps; ``method.model.eval()`` and
  ``method.model(images, camids)`` for evaluation (``camids`` matter only with SIE).
"""
