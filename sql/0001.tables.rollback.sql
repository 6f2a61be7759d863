DROP TABLE IF EXISTS dead_letters, alerts, recommendations_latest, recommendation_history, click_events, news_sentiment, items, model_versions;
