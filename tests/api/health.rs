//! The bot runs without Discord: API and dashboard answer, errors are `{code, message}`.

use crate::helpers::spawn_app;

#[tokio::test]
async fn runs_without_discord_and_reports_health() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/api/health").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["discord"], false);
    assert_eq!(body["plugins"].as_array().unwrap().len(), 18);

    let (status, plugins) = app.get_json("/api/plugins").await;
    assert_eq!(status, 200);
    let moderation = plugins
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "moderation")
        .unwrap();
    assert_eq!(moderation["collections"].as_array().unwrap().len(), 5);
    assert_eq!(moderation["cloneSteps"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn unknown_api_routes_answer_code_and_message() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/api/nope").await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], "not_found");
    assert!(body["message"].as_str().unwrap().contains("/api/nope"));
}
