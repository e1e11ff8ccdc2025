"""The start-up tricks of the serializer, gathered in one place.

execnet_serial travels: every popen gateway's remote imports it at its start (about
25 ms in all). What it keeps off that path, because importing it there costs at least
0.5 ms (a fresh interpreter that has imported the travelling packages, then the step
alone; benchmarks/README.md, "Start-up tricks we keep"):

- ``typing`` (18 ms on CPython 3.12, 9 ms on 3.8): every module imports
  ``TYPE_CHECKING`` from here, false at run time, so its annotations are checked by
  mypy and never evaluated; the ``ChannelHook`` Protocol (``_hook``) loads on first
  use of ``execnet_serial.ChannelHook`` (PEP 562).
- the modules of the rarer paths, imported on their first use (3.8 ms on 3.12, 1.6 ms
  on 3.8, together): ``_columns`` (record lists and dicts), ``_encoder_deep`` (nesting
  deeper than the recursive encoder goes), ``_files`` (``dump``/``load`` on files).
- ``contextlib``: ``try: ... except ...: pass`` instead of ``contextlib.suppress``
  (ruff's SIM105 is off for the travelling packages).

tests/execnet_channel/test_lean_import.py checks that a remote's path imports none of
these.
"""

#: False at run time; mypy takes every ``if TYPE_CHECKING:`` block as true.
TYPE_CHECKING = False

__all__ = ["TYPE_CHECKING"]
