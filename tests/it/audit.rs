//! `recall audit verify` recomputes the hash chain from the database and catches an edited,
//! deleted or reordered event (tampering done directly in SQLite, as an attacker would).

use sqlx::Connection;

use crate::support::Recall;

async fn tamper(db: &std::path::Path, sql: &str) {
    let url = format!("sqlite://{}", db.display());
    let mut c = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("open db");
    sqlx::raw_sql(sql).execute(&mut c).await.expect("tamper");
    c.close().await.expect("close");
}

fn fresh_copy(src: &Recall, name: &str) -> Recall {
    let r = Recall::new("");
    // Checkpointed by the closed process; copy the main file and any WAL left behind.
    for ext in ["", "-wal", "-shm"] {
        let from = format!("{}{ext}", src.db_path().display());
        if std::path::Path::new(&from).exists() {
            std::fs::copy(&from, format!("{}{ext}", r.db_path().display())).expect(name);
        }
    }
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_catches_edited_deleted_and_reordered_events() {
    let base = Recall::new("");
    let r = base.rehearse("ua-parser-js-2021");
    let id = r.id();
    let ok = base.run(&["audit", "verify", &id]);
    assert_eq!(ok.code, Some(0), "{ok:?}");
    assert!(ok.stdout.starts_with("ok:"), "{ok:?}");

    let cases = [
        (
            "edited",
            format!(
                "UPDATE events SET summary = 'nothing to see' WHERE incident_id = '{id}' AND seq = 5"
            ),
            5,
        ),
        (
            "edited-data",
            format!("UPDATE events SET data_json = '{{}}' WHERE incident_id = '{id}' AND seq = 7"),
            7,
        ),
        (
            "edited-actor",
            format!("UPDATE events SET actor = 'mallory' WHERE incident_id = '{id}' AND seq = 3"),
            3,
        ),
        (
            "deleted",
            format!("DELETE FROM events WHERE incident_id = '{id}' AND seq = 4"),
            5,
        ),
        (
            "reordered",
            format!(
                "UPDATE events SET seq = -1 WHERE incident_id = '{id}' AND seq = 6;
                 UPDATE events SET seq = 6 WHERE incident_id = '{id}' AND seq = 7;
                 UPDATE events SET seq = 7 WHERE incident_id = '{id}' AND seq = -1;"
            ),
            6,
        ),
        (
            "truncated",
            format!(
                "DELETE FROM events WHERE incident_id = '{id}' AND seq = (SELECT MAX(seq) FROM events WHERE incident_id = '{id}')"
            ),
            0,
        ),
    ];
    for (name, sql, first_bad) in cases {
        let copy = fresh_copy(&base, name);
        tamper(&copy.db_path(), &sql).await;
        let v = copy.run(&["audit", "verify", &id]);
        assert_eq!(v.code, Some(1), "{name}: {v:?}");
        assert!(v.stdout.contains("BROKEN"), "{name}: {v:?}");
        if first_bad > 0 {
            assert!(
                v.stdout.contains(&format!("seq {first_bad}")),
                "{name}: expected seq {first_bad}: {v:?}"
            );
        }
    }
}
