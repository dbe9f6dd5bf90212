"""Recommendations: the per-article engine, the eligibility rules and the Spark job that runs them."""
