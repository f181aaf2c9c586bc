"""``python -m reid.cli ...`` (e.g. under ``accelerate launch`` or ``torchrun``)."""

from reid.cli import main

main()
