"""Thin triggers, one blueprint module per area: parse the request, call one service in `shared`, map the outcome."""
