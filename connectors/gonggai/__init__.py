"""工改系统 (engineering-approval system) connectors: the data-interface source and its normaliser."""
