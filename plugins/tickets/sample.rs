//! Sample data: ticket settings, categories, tickets and the transcripts of closed ones.

use mongodb::bson::{doc, oid::ObjectId, Bson, DateTime, Document};
use rand::Rng;

use heimdall_host::seed::{Sample, SampleGuild, Samples};

#[async_trait::async_trait]
impl Samples for super::TicketsPlugin {
    async fn guild(&self, s: &mut Sample<'_>, guild: &SampleGuild) -> anyhow::Result<()> {
        let Sample { g, w, scale, .. } = s;
        w.put(
            "ticket_configs",
            doc! { "_id": g.oid(), "guildId": &guild.id, "enabled": true, "__v": 0 },
        )
        .await?;
        let mut cats: Vec<ObjectId> = Vec::new();
        for name in ["Support", "Billing", "Bug report 🐛", "Partnership"] {
            let id = g.oid();
            cats.push(id);
            w.put(
                "ticket_categories",
                doc! { "_id": id, "guildId": &guild.id, "name": name, "__v": 0 },
            )
            .await?;
        }
        for number in 1..=g.count(120.0, guild.factor, *scale, 2) {
            let id = g.oid();
            let closed = g.chance(0.8);
            let created = g.past_date().timestamp_millis();
            w.put(
                "tickets",
                doc! {
                    "_id": id, "guildId": &guild.id, "number": number as i32, "categoryId": *g.pick(&cats),
                    "openerId": g.pick(&guild.members).clone(), "status": if closed { "closed" } else { "open" },
                    "createdAt": DateTime::from_millis(created),
                    "closedAt": if closed { Bson::DateTime(DateTime::from_millis(created + 7_200_000)) } else { Bson::Null },
                    "__v": 0,
                },
            )
            .await?;
            if closed {
                let messages: Vec<Document> = (0..g.rng.gen_range(2..15))
                    .map(|i| doc! { "authorId": g.pick(&guild.members).clone(), "content": g.text(1, 30), "at": DateTime::from_millis(created + i * 30_000) })
                    .collect();
                w.put(
                    "ticket_transcripts",
                    doc! { "_id": g.oid(), "ticketId": id, "messages": messages, "createdAt": DateTime::from_millis(created + 7_200_000), "__v": 0 },
                )
                .await?;
            }
        }
        Ok(())
    }
}
