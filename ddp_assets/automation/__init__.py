"""Automation and SLOs: schedules, landing-zone sensors, declarative automation on upstream
change, freshness policies, alerts and the product health scorecard."""
