"""Where the pipeline keeps things: lake tables, the publish journal, test fault points."""
