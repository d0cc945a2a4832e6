"""Export: bookings and shifts as Outlook events, bulk jobs, retries."""
