# Die Texte des Tags-Plugins (Deutsch).

created = Tag **{ $name }** angelegt.
edited = Tag **{ $name }** geändert.
deleted = Tag **{ $name }** gelöscht.
err-tag_exists = Ein Tag namens **{ $name }** gibt es schon; ändere ihn mit `/tag edit`.
err-no_such_tag = Es gibt keinen Tag namens **{ $name }**.
err-invalid_tag_name = Ein Tag-Name hat 1 bis 32 Buchstaben, Ziffern, `-` oder `_`.
err-invalid_tag_content = Der Text eines Tags hat 1 bis 2000 Zeichen.
