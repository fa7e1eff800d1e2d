//! Game days on a schedule in `recall serve` (see `[[gameday]]` in the config).
