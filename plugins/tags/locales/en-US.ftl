# The tags plugin's strings (English).

created = Tag **{ $name }** created.
edited = Tag **{ $name }** updated.
deleted = Tag **{ $name }** deleted.
err-tag_exists = A tag named **{ $name }** already exists; edit it with `/tag edit`.
err-no_such_tag = There is no tag named **{ $name }**.
err-invalid_tag_name = A tag name is 1 to 32 letters, digits, `-` or `_`.
err-invalid_tag_content = A tag's text is 1 to 2000 characters.
