"""The run's reports: the JSON document, terminal and Markdown text, HTML, tables and plots."""
