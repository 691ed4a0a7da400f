import sys

from fanzha.cli import main

sys.exit(main())
