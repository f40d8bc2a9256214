import sys

from savi_plugin.cli import main

sys.exit(main())
