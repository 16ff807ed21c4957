"""Trading signals derived from indicators: the weighted-indicator rule signal."""
