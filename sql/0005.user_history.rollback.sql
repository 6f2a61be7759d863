DROP TABLE user_history;
