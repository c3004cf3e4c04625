"""External-works permits a utility files through ubridge (issue 18 item 1): intake, submitter, follower."""
