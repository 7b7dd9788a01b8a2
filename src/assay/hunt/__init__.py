"""Hunt: many rules over many logs, into a timeline, through a grouped single-scan fast path."""
