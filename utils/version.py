"""The suite's version, recorded in every snapshot and result file."""
TOOL_VERSION = "0.1.0"
