-- The exchange keeps its own database beside the application's (exchange_database_url).
CREATE DATABASE exchange OWNER autobidder;
