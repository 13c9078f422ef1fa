import sys

from embsearch.cli import main

sys.exit(main())
