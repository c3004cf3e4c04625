"""The supervision view for the competent department and the monthly dispatch report (issue 16, items 4-5)."""
