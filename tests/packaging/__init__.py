"""The deployment: template, function zips, packaging steps."""
