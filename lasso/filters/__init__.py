"""Gateway-served stateful filters (eth_newFilter and kin): see lasso.filters.service."""
