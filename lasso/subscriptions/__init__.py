"""Shared, gap-free upstream subscriptions: the hub, its streams, client sessions."""
