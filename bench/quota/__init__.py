"""Quota benchmark: what QuotaMixin costs per insert; one pull over many clients."""
