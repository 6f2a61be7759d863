DO $$
BEGIN
    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM streamscore_writer, streamscore_reader', current_schema());
    EXECUTE format('REVOKE ALL ON SCHEMA %I FROM streamscore_writer, streamscore_reader', current_schema());
END
$$;
