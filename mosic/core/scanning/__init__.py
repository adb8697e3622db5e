"""Music folders indexed in place: the scan (``scan``), its lease and status (``lease``),
clip rows of library files (``rows``), folder directories (``directories``), peaks drawn
afterwards (``peaks``), and the scans of a serving process (``service``)."""
