"""爱山东 payments (缴费): intake, delivery to the utility, receipt back to the app."""
