"""Access keys: who may call which route on which collections, and how fast."""
