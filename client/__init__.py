"""The client layer: every Temporal call the scripts, the inbox, the demo and the
benchmarks make (connect, start, status, decide, list), written once."""
