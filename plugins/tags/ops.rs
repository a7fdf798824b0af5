//! What staff do with tags, as plain functions: the dashboard's routes and the `/tag`
//! commands call these, and each change is announced to the server's room
//! (`tags:tag_created|updated|deleted`, with who did it).

use futures::TryStreamExt;
use mongodb::bson::{doc, DateTime, Document};
use serde::Serialize;
use serde_json::json;

use heimdall_host::context::Data;
use heimdall_host::error::{UserError, UserErrorKind};

use crate::{normalize_name, Tag};

/// The collection.
pub const TAGS: &str = "tags";
/// Longest tag text: one Discord message.
pub const MAX_CONTENT: usize = 2000;
/// Longest tag name.
pub const MAX_NAME: usize = 32;

/// A tag as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TagView {
    /// Name.
    pub name: String,
    /// Text.
    pub content: String,
    /// Author.
    pub author_id: String,
    /// Times shown.
    pub uses: i32,
    /// Created, milliseconds since the epoch.
    pub created_at: Option<i64>,
}

impl From<Tag> for TagView {
    fn from(t: Tag) -> Self {
        Self {
            name: t.name,
            content: t.content,
            author_id: t.author_id,
            uses: t.uses,
            created_at: t.created_at.map(|d| d.timestamp_millis()),
        }
    }
}

/// One page of TagViews.
pub type TagPage = heimdall_host::extract::Page<TagView, String>;

/// The checked, stored form of a name the user typed.
pub fn check_name(name: &str) -> Result<String, UserError> {
    let n = normalize_name(name);
    if n.is_empty()
        || n.chars().count() > MAX_NAME
        || !n
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
    {
        return Err(UserError::bad_request(
            "invalid_tag_name",
            format!("{name:?} is not a tag name: 1 to {MAX_NAME} letters, digits, `-` or `_`"),
        ));
    }
    Ok(n)
}

fn check_content(content: &str) -> Result<(), UserError> {
    let n = content.trim().chars().count();
    if n == 0 || content.chars().count() > MAX_CONTENT {
        return Err(UserError::bad_request(
            "invalid_tag_content",
            format!("a tag's text is 1 to {MAX_CONTENT} characters (this one has {n})"),
        ));
    }
    Ok(())
}

fn no_such(name: &str) -> UserError {
    UserError::new(
        UserErrorKind::NotFound,
        "no_such_tag",
        format!("there is no tag named {name:?}"),
    )
}

fn coll(data: &Data) -> mongodb::Collection<Tag> {
    data.db.collection(TAGS)
}

/// A server's tags whose name contains `search`, by name, after `after`.
pub async fn list(
    data: &Data,
    guild: &str,
    search: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> anyhow::Result<TagPage> {
    let limit = TagPage::limit(limit);
    let mut filter = doc! { "guildId": guild };
    let mut name = Document::new();
    if let Some(q) = search.map(normalize_name).filter(|q| !q.is_empty()) {
        name.insert("$regex", regex_escape(&q));
    }
    if let Some(a) = after {
        name.insert("$gt", a);
    }
    if !name.is_empty() {
        filter.insert("name", name);
    }
    let items: Vec<TagView> = coll(data)
        .find(filter)
        .sort(doc! { "name": 1 })
        .limit(limit + 1)
        .await?
        .map_ok(TagView::from)
        .try_collect()
        .await?;
    Ok(TagPage::of(items, limit, |t| t.name.clone()))
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let special = "\\^$.|?*+()[]{}".contains(c);
            special
                .then_some('\\')
                .into_iter()
                .chain(std::iter::once(c))
        })
        .collect()
}

/// Creates a tag; 409 when the name is taken.
pub async fn create(
    data: &Data,
    guild: &str,
    name: &str,
    content: &str,
    by: u64,
) -> Result<TagView, anyhow::Error> {
    let name = check_name(name)?;
    check_content(content)?;
    let tag = Tag {
        id: None,
        guild_id: guild.to_string(),
        name: name.clone(),
        content: content.to_string(),
        author_id: by.to_string(),
        uses: 0,
        created_at: Some(DateTime::now()),
        extra: Document::new(),
    };
    match coll(data).insert_one(&tag).await {
        Ok(_) => {}
        Err(e) if heimdall_host::db::is_duplicate_key(&e) => {
            return Err(UserError::new(
                UserErrorKind::Conflict,
                "tag_exists",
                format!("a tag named {name:?} already exists; edit it instead"),
            )
            .into())
        }
        Err(e) => return Err(e.into()),
    }
    let view = TagView::from(tag);
    data.ws.broadcast_to_guild(
        guild,
        "tags:tag_created",
        json!({ "by": by.to_string(), "tag": view }),
    );
    Ok(view)
}

/// Replaces a tag's text.
pub async fn edit(
    data: &Data,
    guild: &str,
    name: &str,
    content: &str,
    by: u64,
) -> Result<TagView, anyhow::Error> {
    check_content(content)?;
    let change = doc! { "$set": { "content": content, "updatedAt": DateTime::now(), "updatedBy": by.to_string() } };
    update(data, guild, name, change, by).await
}

/// Applies `change` to tag `name` and announces the tag as it is now.
async fn update(
    data: &Data,
    guild: &str,
    name: &str,
    change: Document,
    by: u64,
) -> Result<TagView, anyhow::Error> {
    let name = check_name(name)?;
    let tag = coll(data)
        .find_one_and_update(doc! { "guildId": guild, "name": &name }, change)
        .return_document(mongodb::options::ReturnDocument::After)
        .await?
        .ok_or_else(|| no_such(&name))?;
    let view = TagView::from(tag);
    data.ws.broadcast_to_guild(
        guild,
        "tags:tag_updated",
        json!({ "by": by.to_string(), "tag": view }),
    );
    Ok(view)
}

/// Deletes a tag.
pub async fn delete(data: &Data, guild: &str, name: &str, by: u64) -> Result<(), anyhow::Error> {
    let name = check_name(name)?;
    let gone = coll(data)
        .delete_one(doc! { "guildId": guild, "name": &name })
        .await?;
    if gone.deleted_count == 0 {
        return Err(no_such(&name).into());
    }
    data.ws.broadcast_to_guild(
        guild,
        "tags:tag_deleted",
        json!({ "by": by.to_string(), "name": name }),
    );
    Ok(())
}

/// Shows a tag: its text, counting the use.
pub async fn show(data: &Data, guild: &str, name: &str, by: u64) -> Result<TagView, anyhow::Error> {
    update(data, guild, name, doc! { "$inc": { "uses": 1 } }, by).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stored_lower_case_and_checked() {
        assert_eq!(check_name("  Rules ").unwrap(), "rules");
        assert_eq!(check_name("faq_2-x").unwrap(), "faq_2-x");
        for bad in ["", "two words", "a/b", &"x".repeat(33)] {
            assert_eq!(
                check_name(bad).unwrap_err().code,
                "invalid_tag_name",
                "{bad}"
            );
        }
    }

    #[test]
    fn a_search_is_literal_text() {
        assert_eq!(regex_escape("a.b*"), "a\\.b\\*");
    }
}
