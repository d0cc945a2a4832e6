"""The Microsoft Graph v1.0 side: users, calendars, events, calendarView (and delta), $batch, getSchedule.

`make_graph_handler(sim)` (in `simulator.graph.api`) is what the HTTPS server mounts for `/v1.0/` and
`/_control/graph/`; `attach_graph(sim)` (in `simulator.graph.state`) creates `sim.graph`, the state and control
methods, for code that needs them before or without a server.
"""
