"""Old package path of execnet's scripts: `python -m execnet.script.socketserver`."""
