"""A child process serving a gateway over its stdin/stdout (not a test module).

    python serve_child.py [MODEL]

The tests start it with PYTHONPATH naming the execnet-serial and execnet-channel src
directories, in this interpreter or in the other interpreters the code must run on.
"""

import sys

from execnet_channel import StdioIO, serve

model = sys.argv[1] if len(sys.argv) > 1 else "thread"
serve(StdioIO.from_process(model), "child", exit_process=True)
