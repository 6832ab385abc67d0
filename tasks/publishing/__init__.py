"""Publishing's parts: where a workspace publishes and how its tables are read back
(``stores``), the staged files (``staging``), the commit point and everything after it
(``commit``), the champion alias (``champion``), recovery of interrupted publishes
(``recovery``) and the earlier version of a date (``rollback``)."""
