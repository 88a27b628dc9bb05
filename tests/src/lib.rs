//! End-to-end test harness: starts real skiff processes and drives them as a user would.
