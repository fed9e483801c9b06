"""Loading policy and calendar files: YAML schema, line numbers, and the loaded Configuration.

Every load error names its file and line (``FILE:LINE: message``); a set of files that does not
load whole is rejected whole.
"""
