# The moderation plugin's strings (English).

warned = { $member } was warned (case #{ $case }).
