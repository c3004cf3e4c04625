"""The 12345 complaint loop: a stage keeping the 清零 ledger, raising 督办 and sending answers to the platform."""
