"""The notifier service: SOP step 11 (distribution and proof of receipt) and every outbound message."""
