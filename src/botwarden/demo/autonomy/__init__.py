"""`botwarden demo autonomy`: the autonomy scenario on real worker processes, its timeline
read back from the store, and its verdict (scenario.py tells the story)."""
