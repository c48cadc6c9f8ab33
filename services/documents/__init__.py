"""The documents service (SOP steps 4, 5 and 7): units' data, Renja drafts, findings and rendered files."""
