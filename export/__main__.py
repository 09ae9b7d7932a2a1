"""`python -m export ...` is `bert-hub-export ...`."""
import sys

from export.cli import main

sys.exit(main())
