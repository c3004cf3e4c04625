"""爱山东 connector: the signed application gateway and the router turning applications into tasks."""
