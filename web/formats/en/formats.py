"""Date and time formats for English pages (the admin): times to the second.

Django's English default shows a time to the minute ("4:10 p.m."), so rows written within a minute
all look alike. A date and time reads 2026-11-30 16:10:42 (24-hour, with seconds); dates alone stay Django's.
"""

DATETIME_FORMAT = "Y-m-d H:i:s"
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s"
TIME_FORMAT = "H:i:s"
