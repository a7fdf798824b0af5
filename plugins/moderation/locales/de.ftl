# Die Texte des Moderations-Plugins (Deutsch).

warned = { $member } wurde verwarnt (Fall #{ $case }).
