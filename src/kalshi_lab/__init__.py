"""kalshi-lab: research-to-trading pipeline for Kalshi prediction markets."""
