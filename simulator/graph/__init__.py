"""The Microsoft Graph v1.0 side: users, calendars, events, calendarView (and delta), $batch, getSchedule."""
