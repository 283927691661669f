"""The tools a turn offers to its model and runs: built-ins, MCP tools (through a gateway), client tools."""
