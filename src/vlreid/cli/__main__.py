"""``python -m vlreid.cli ...`` (e.g. under ``accelerate launch`` or ``torchrun``)."""

from vlreid.cli import main

main()
