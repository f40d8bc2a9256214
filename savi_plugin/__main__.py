import sys

from savi_plugin.console import main

sys.exit(main())
